module koala-store/bench/loadgen

go 1.26

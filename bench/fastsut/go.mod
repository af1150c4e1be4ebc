module koala-store/bench/fastsut

go 1.26

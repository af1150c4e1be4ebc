from koala_store.cli import main

main()

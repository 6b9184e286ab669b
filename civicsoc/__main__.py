from civicsoc.cli import main

main()

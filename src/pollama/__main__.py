from pollama.cli.main import main

main()

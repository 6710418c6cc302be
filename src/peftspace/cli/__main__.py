from peftspace.cli import main

main()

from eventplan.cli import main

main()

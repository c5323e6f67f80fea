from pulsewire.cli.main import main

main()

from pulsewire.cli import main

main()

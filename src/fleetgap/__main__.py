from fleetgap.cli import main

main()

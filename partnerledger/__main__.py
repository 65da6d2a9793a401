from partnerledger.cli import main

main()

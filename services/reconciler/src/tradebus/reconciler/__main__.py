from tradebus.reconciler.main import main

main()

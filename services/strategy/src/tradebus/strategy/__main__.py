from tradebus.strategy.main import main

main()

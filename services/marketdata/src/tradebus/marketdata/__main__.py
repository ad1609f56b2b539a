from tradebus.marketdata.main import main

main()

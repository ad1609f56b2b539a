from tradebus.execution.main import main

main()

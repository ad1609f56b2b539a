"""The readers of :mod:`tradebus.cli.backtest.readers`, one module per data format.

:mod:`.common` holds what the formats share (:class:`~.common.DataFileError`,
opening plain or gzip files, CSV rows, field parsing); :mod:`.binance_raw`,
:mod:`.tardis` and :mod:`.bars` read the formats. The formats themselves are
described in :mod:`tradebus.cli.backtest.readers`, the public entry point.
"""

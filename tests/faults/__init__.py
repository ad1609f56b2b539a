"""Fault-injection tests: real processes under hostile input, bad configuration and failures."""

"""Fault-injection tests: hostile input, bad configuration."""

"""Offline proof against AWS's own rules: authorization data, one policy evaluator, SCP fit."""

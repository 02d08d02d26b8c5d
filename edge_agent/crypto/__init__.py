"""Cryptography of the box: the two suites (intl, sm), keys, sealed values, blind indexes."""

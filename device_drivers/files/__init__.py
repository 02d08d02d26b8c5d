"""Devices that hand over files (ECG carts): a watched folder as a transport."""

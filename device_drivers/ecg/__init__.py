"""12-lead ECG cart files (devices.md §5): DICOM, SCP-ECG, HL7 aECG, Philips XML.

One module per format, each a pure parser and writer around record.EcgRecord.
"""

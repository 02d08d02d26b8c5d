"""12-lead ECG cart files (docs/protocols/ecg-files.md): DICOM, SCP-ECG, HL7 aECG, Philips XML.

One module per format, each a pure parser and writer around record.EcgRecord.
"""

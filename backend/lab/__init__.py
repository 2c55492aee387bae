"""The lecture lab: preset experiments that make a classic phenomenon of deep learning visible.

Torch-free (the dashboard imports it): :mod:`backend.lab.presets` describes and launches the
presets' runs, :mod:`backend.lab.records` reads what their probes wrote.
"""

"""Pure figure builders: records in, plotly figure dicts out. No Dash imports here."""

"""The dashboard's pages, one folder each: layout and callbacks (page.py), data access, figures."""

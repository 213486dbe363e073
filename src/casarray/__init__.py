"""casarray: the Exchange 2010 client access tier, in Python."""

__version__ = "0.1.0"

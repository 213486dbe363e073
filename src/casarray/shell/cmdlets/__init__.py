"""The cmdlets, one module per noun family."""

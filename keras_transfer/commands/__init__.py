"""What the `keras-transfer` sub-commands run, one module per concern (see `keras_transfer.commands.cli`)."""

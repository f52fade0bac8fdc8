"""The one place keras-transfer uses private parts of the libraries it builds on.

`keras_transfer.compat.keras_internals` holds the Keras functional-graph internals (which layer
produced a tensor, a layer's call nodes, where `fit` resumes); `keras_transfer.compat.keras_hub`
the keras-hub ones. Everything else uses public APIs, so a library upgrade that moves one of
these has one file to fix.
"""

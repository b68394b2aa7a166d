"""The offline trainer: `python -m training {download,train,analyze,synth}`."""

"""The portal's speed measurement: data sets, bare baselines and the ratio runner."""

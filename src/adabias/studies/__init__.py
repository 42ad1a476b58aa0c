"""The study layer (DESIGN §4): machinery that several experiments share — sweeps of image
classifiers and of the bilinear model, many-copies label-noise training, curve helpers and
the statistics claims are decided with. It sits between flows/problems/engine and the
experiments; no experiment imports another, they import from here.
"""

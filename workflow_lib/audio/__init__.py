"""Audio, in a room of its own: signal processing (dsp), WAV files (wav), what a listener gets of an output
(metrics: LSD, PESQ, STOI), and the bases of chains whose input and output are audio (chain, frames,
streaming, scoring). A library for plug-ins: nothing generic imports it (the metric registry names its
metrics module, loaded only for outputs of the audio kind)."""

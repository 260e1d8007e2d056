from _never_called import stub

__getattr__ = stub("librosa")

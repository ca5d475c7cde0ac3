"""Run directories and checkpoints: where a run lives and how its state is written and read back.

* :mod:`.plan`: the run directory, ``resume`` (``auto`` or a path), run ids, safe checkpoint loading;
* :mod:`.checkpoints`: Lightning checkpoint callbacks and IO (periodic, best, last; FSDP folders);
* :mod:`.atomic`: atomic writes (temporary file or folder, fsync, rename) and their one-line errors.
"""

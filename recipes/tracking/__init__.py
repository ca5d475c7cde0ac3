"""What a run reports: loggers (W&B with its offline mode and rewind, CSV, TensorBoard), the CSV fallback
when W&B fails, the end-of-run summary, and the training monitor callback.

* :mod:`.loggers`: building the logger, W&B mode, secret redaction, CSV rewind on resume;
* :mod:`.wandb_rewind`, :mod:`.fallback`: W&B's rewind on resume, and logging on to CSV if W&B fails;
* :mod:`.summary`: ``summary.json`` and the console summary; :mod:`.callbacks`: throughput and monitoring.
* :mod:`.quiet`: Lightning's advert lines and a deprecation warning of its own kept out of the output (train and evaluate).
"""

"""The built-in benchmark on data that ships in packages (needs the ``bench`` extra)."""

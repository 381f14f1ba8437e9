"""Training monitoring: step time and throughput without a device sync per step, compile time, peak
device memory and host RSS, logged values (loss, learning rate, gradient norm), a live progress
line, a summary, JSON/CSV export and a plot."""

from losslab_jax.monitor._lr import learning_rate as learning_rate
from losslab_jax.monitor._monitor import Monitor as Monitor
from losslab_jax.monitor._monitor import device_peak_bytes as device_peak_bytes
from losslab_jax.monitor._monitor import host_peak_rss_bytes as host_peak_rss_bytes
from losslab_jax.monitor._monitor import load_csv as load_csv
from losslab_jax.monitor._monitor import load_json as load_json
from losslab_jax.monitor._monitor import plot_records as plot_records

__all__ = ["Monitor", "device_peak_bytes", "host_peak_rss_bytes", "learning_rate", "load_csv", "load_json",
           "plot_records"]

"""Local exchange simulator: Upbit, Bithumb, Binance spot and Binance USDⓈ-M futures protocols
over real HTTP and WebSocket on 127.0.0.1, one port per protocol.

Entry points: :class:`Simulator` (``async with Simulator(SimConfig()) as sim``),
:func:`start_in_thread` for sync code, ``python -m simulator`` and
``manage.py simexchange``. No Django imports here.
"""

from simulator.faults import Faults
from simulator.server import SimConfig, Simulator, SimulatorThread, start_in_thread

__all__ = ["Faults", "SimConfig", "Simulator", "SimulatorThread", "start_in_thread"]

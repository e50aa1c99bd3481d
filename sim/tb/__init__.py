"""cocotb test modules (loaded by the simulator, not by pytest)."""

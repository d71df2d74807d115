"""Built-in handlers beyond the seed's simulations: ``http``, ``sleep``, ``transform``."""

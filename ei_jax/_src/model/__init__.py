"""Networks as maps: the activation registry, layer maps, recording a forward pass, the topology, recurrent cells."""

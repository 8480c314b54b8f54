"""Operating a cluster: ``cim up`` (``launcher``: ``LocalCluster``; ``supervisor``: restarts;
``services``: the processes; ``ha``: the NATS and Redis clusters of ``cim up --ha``;
``data_folder``: where the secret and API key are kept) and ``cim status`` / ``cim push``
(``status``)."""

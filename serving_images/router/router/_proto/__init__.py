"""Generated OIP v2 protobuf module (``make proto``)."""

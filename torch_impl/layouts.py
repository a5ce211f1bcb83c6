"""Weight layouts (keras, onnx, ifog) to and from torch's: re-exported from :mod:`reference.verify.layouts`."""

from reference.verify.layouts import (
    LAYOUTS,
    export_state_dict,
    export_weights,
    import_gradients,
    import_state_dict,
    import_weights,
    reorder_gates,
)

__all__ = ["LAYOUTS", "export_state_dict", "export_weights", "import_gradients", "import_state_dict",
           "import_weights", "reorder_gates"]

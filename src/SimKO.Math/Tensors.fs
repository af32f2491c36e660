namespace SimKO.Math
open TorchSharp
module Tensors =
    let version () = torch.__version__

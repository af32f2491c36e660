/// TorchSharp's native library loads on this machine and computes.
module SimKO.Tests.Smoke

open Expecto
open TorchSharp

let tests =
    testList "torch" [
        test "native library loads and a matmul computes the right value" {
            use a = torch.tensor([| 1.0; 2.0; 3.0; 4.0 |]).reshape(2L, 2L)
            use p = a.matmul(a)
            let got = p.data<float>().ToArray()
            Expect.sequenceEqual got [| 7.0; 10.0; 15.0; 22.0 |] "[[1,2],[3,4]]^2"
        }
    ]

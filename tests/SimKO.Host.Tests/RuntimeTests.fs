/// Device and dtype parsing: accepted spellings and the errors for the rest.
module SimKO.Host.Tests.RuntimeTests

open System
open Expecto
open TorchSharp
open SimKO.Host.Runtime
open SimKO.Host.Tests.Helpers

let tests =
    testList "runtime" [
        test "cpu parses to the CPU device and auto picks the CPU when no GPU is visible" {
            Expect.equal (TorchRuntime.ParseDevice "cpu").``type`` DeviceType.CPU "cpu"
            Expect.equal (TorchRuntime.ParseDevice " CPU ").``type`` DeviceType.CPU "case and spaces"
            if not (torch.cuda.is_available ()) then
                Expect.equal (TorchRuntime.ParseDevice "auto").``type`` DeviceType.CPU "auto without a GPU"
        }
        test "asking for CUDA without it says how to build with the CUDA backend" {
            if torch.cuda.is_available () then skiptest "a GPU is visible here"
            for spelling in [ "cuda"; "cuda:0"; "cuda:1" ] do
                let e = throws<InvalidOperationException> (fun () -> TorchRuntime.ParseDevice spelling |> ignore) spelling
                Expect.stringContains e.Message "-p:TorchBackend=cuda" "names the build switch"
                Expect.stringContains e.Message "TorchSharp-cuda-linux" "names the package"
        }
        test "an unknown device or a bad index lists what is accepted" {
            let e = throws<ArgumentException> (fun () -> TorchRuntime.ParseDevice "gpu" |> ignore) "gpu"
            Expect.stringContains e.Message TorchRuntime.DeviceChoices "lists choices"
            let e2 = throws<ArgumentException> (fun () -> TorchRuntime.ParseDevice "cuda:x" |> ignore) "cuda:x"
            Expect.stringContains e2.Message "non-negative integer" "explains the index"
        }
        test "dtypes parse in their usual spellings and auto is float32 on the CPU" {
            let cpu = torch.CPU
            Expect.equal (TorchRuntime.ParseDType("float32", cpu)) torch.ScalarType.Float32 "float32"
            Expect.equal (TorchRuntime.ParseDType("fp32", cpu)) torch.ScalarType.Float32 "fp32"
            Expect.equal (TorchRuntime.ParseDType("bfloat16", cpu)) torch.ScalarType.BFloat16 "bfloat16"
            Expect.equal (TorchRuntime.ParseDType("BF16", cpu)) torch.ScalarType.BFloat16 "BF16"
            Expect.equal (TorchRuntime.ParseDType("auto", cpu)) torch.ScalarType.Float32 "auto on cpu"
            let e = throws<ArgumentException> (fun () -> TorchRuntime.ParseDType("fp8", cpu) |> ignore) "fp8"
            Expect.stringContains e.Message "bfloat16" "lists choices"
        }
    ]

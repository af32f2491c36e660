using static TorchSharp.torch;

namespace SimKO.Host.Runtime;

/// <summary>Device and dtype chosen at run time, with errors that say how to fix the request.</summary>
public static class DeviceSelection
{
    public static Device ParseDevice(string name)
    {
        var n = name.Trim().ToLowerInvariant();
        if (n == "cpu") return CPU;
        if (n == "cuda" || n.StartsWith("cuda:"))
        {
            if (!cuda.is_available())
                throw new ArgumentException($"device '{name}' was requested but CUDA is not available to this build. " +
                    "Build with the CUDA backend (dotnet build -p:TorchBackend=cuda, which needs the TorchSharp-cuda-linux package) " +
                    "on a machine with an NVIDIA GPU and driver, or use --set device=cpu.");
            int index = n == "cuda" ? 0 : int.TryParse(n[5..], out var i) ? i : throw new ArgumentException($"device '{name}': expected cuda:N");
            if (index >= cuda.device_count()) throw new ArgumentException($"device '{name}': only {cuda.device_count()} CUDA device(s) present");
            return new Device(TorchSharp.DeviceType.CUDA, index);
        }
        throw new ArgumentException($"unknown device '{name}'; valid: cpu, cuda, cuda:N");
    }

    public static ScalarType ParseDType(string name, Device device) => name switch
    {
        "float32" => ScalarType.Float32,
        "bfloat16" when device.type == TorchSharp.DeviceType.CUDA => ScalarType.BFloat16,
        "bfloat16" => throw new ArgumentException("dtype bfloat16 on the CPU is ~100x slower than float32 here (no hardware support); use float32 on CPU, bfloat16 on CUDA"),
        _ => throw new ArgumentException($"unknown dtype '{name}'; valid: float32, bfloat16"),
    };
}

using TorchSharp;
using static TorchSharp.torch;

namespace SimKO.Host.Runtime;

/// <summary>
/// Device and dtype selection at run time. The strings come from the command line
/// (<c>--device cpu|cuda|cuda:N|auto</c>, <c>--dtype float32|bfloat16|auto</c>); every parse error
/// lists the accepted values.
/// </summary>
public static class TorchRuntime
{
    /// <summary>Accepted device spellings, for error messages.</summary>
    public const string DeviceChoices = "auto, cpu, cuda, cuda:N";

    /// <summary>Accepted dtype spellings, for error messages.</summary>
    public const string DTypeChoices = "auto, float32 (fp32, f32), bfloat16 (bf16), float16 (fp16, f16)";

    /// <summary>
    /// Parses a device name. <c>auto</c> picks <c>cuda</c> when a GPU is visible, else <c>cpu</c>.
    /// Asking for CUDA where this build or this machine has none throws with the fix.
    /// </summary>
    public static Device ParseDevice(string text)
    {
        var s = (text ?? "").Trim().ToLowerInvariant();
        if (s == "auto") return torch.cuda.is_available() ? torch.CUDA : torch.CPU;
        if (s == "cpu") return torch.CPU;
        if (s == "cuda" || s.StartsWith("cuda:", StringComparison.Ordinal))
        {
            int index = 0;
            if (s.Length > 4 && (!int.TryParse(s.AsSpan(5), out index) || index < 0))
                throw new ArgumentException($"device '{text}': the index after 'cuda:' must be a non-negative integer (accepted: {DeviceChoices}).");
            RequireCuda(text ?? "");
            int count = torch.cuda.device_count();
            if (index >= count)
                throw new ArgumentException($"device '{text}': this machine has {count} CUDA device(s) (cuda:0 to cuda:{count - 1}).");
            return new Device(DeviceType.CUDA, index);
        }
        throw new ArgumentException($"unknown device '{text}' (accepted: {DeviceChoices}).");
    }

    /// <summary>
    /// Parses a dtype name. <c>auto</c> is bfloat16 on CUDA and float32 on CPU (bf16 matmul has no
    /// hardware support on most CPUs and runs ~100x slower there).
    /// </summary>
    public static ScalarType ParseDType(string text, Device device)
    {
        var s = (text ?? "").Trim().ToLowerInvariant();
        return s switch
        {
            "auto" => device.type == DeviceType.CUDA ? ScalarType.BFloat16 : ScalarType.Float32,
            "float32" or "fp32" or "f32" or "float" => ScalarType.Float32,
            "bfloat16" or "bf16" => ScalarType.BFloat16,
            "float16" or "fp16" or "f16" or "half" => ScalarType.Float16,
            _ => throw new ArgumentException($"unknown dtype '{text}' (accepted: {DTypeChoices})."),
        };
    }

    /// <summary>The HF spelling of a floating dtype (<c>config.json</c>'s <c>torch_dtype</c>).</summary>
    public static string HfDTypeName(ScalarType dtype) => dtype switch
    {
        ScalarType.Float32 => "float32",
        ScalarType.BFloat16 => "bfloat16",
        ScalarType.Float16 => "float16",
        ScalarType.Float64 => "float64",
        _ => throw new ArgumentException($"{dtype} is not a floating model dtype."),
    };

    /// <summary>Throws, with how to fix it, when CUDA is not usable from this process.</summary>
    public static void RequireCuda(string requested)
    {
        if (torch.cuda.is_available()) return;
        bool cudaBackendPresent = File.Exists(Path.Combine(AppContext.BaseDirectory, "libtorch_cuda.so"))
            || File.Exists(Path.Combine(AppContext.BaseDirectory, "runtimes", "linux-x64", "native", "libtorch_cuda.so"));
        var why = cudaBackendPresent
            ? "this build has the CUDA backend but no GPU is visible (check the NVIDIA driver, `nvidia-smi`, and CUDA_VISIBLE_DEVICES)"
            : "this build uses TorchSharp's CPU backend. Rebuild with the CUDA backend: `dotnet build -c Release -p:TorchBackend=cuda` (it restores the TorchSharp-cuda-linux package, which needs an NVIDIA driver at run time)";
        throw new InvalidOperationException($"device '{requested}' asks for CUDA, but CUDA is not available: {why}. Use --device cpu to run on the CPU.");
    }

    /// <summary>One line describing a device and dtype, for logs.</summary>
    public static string Describe(Device device, ScalarType dtype) => $"{device} / {HfDTypeName(dtype)}";
}

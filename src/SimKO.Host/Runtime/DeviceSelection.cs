using SimKO.Cli;
using static TorchSharp.torch;

namespace SimKO.Host.Runtime;

/// <summary>The typed device and dtype of a run as torch values, with errors that say how to fix the request.</summary>
public static class DeviceSelection
{
    public static Device Resolve(RunSpec.Device device)
    {
        if (device is not RunSpec.Device.Cuda c) return CPU;
        if (!cuda.is_available())
            throw new ArgumentException($"device '{RunSpec.deviceName(device)}' was requested but CUDA is not available to this build. " +
                "Build with the CUDA backend (dotnet build -p:TorchBackend=cuda, which needs the TorchSharp-cuda-linux package) " +
                "on a machine with an NVIDIA GPU and driver, or use --set device=cpu.");
        if (c.index >= cuda.device_count()) throw new ArgumentException($"device '{RunSpec.deviceName(device)}': only {cuda.device_count()} CUDA device(s) present");
        return new Device(TorchSharp.DeviceType.CUDA, c.index);
    }

    public static ScalarType ScalarTypeOf(RunSpec.DType dtype) => dtype.IsBFloat16 ? ScalarType.BFloat16 : ScalarType.Float32;
}

using SimKO.Cli;
using TorchSharp;
using static TorchSharp.torch;

namespace SimKO.Host.Collective;

/// <summary>What the launcher (mpirun, srun) says about this process: rank, world size, local rank.</summary>
public static class LaunchEnvironment
{
    /// <summary>The <c>simko</c> command that checks the collectives under a launcher (Commands/CollectiveCheckCommand.cs),
    /// named here so that the benches that launch it need not depend on the commands.</summary>
    public const string CheckCommand = "collective-check";

    static int? Read(params string[] names)
    {
        foreach (var n in names)
            if (Environment.GetEnvironmentVariable(n) is { Length: > 0 } v && int.TryParse(v, out var x)) return x;
        return null;
    }

    /// <summary>The world size the launcher gave (OMPI_COMM_WORLD_SIZE, PMI_SIZE, SLURM_NTASKS), or null outside one.</summary>
    public static int? WorldSize() => Read("OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "PMIX_SIZE", "SLURM_NTASKS");
    public static int? Rank() => Read("OMPI_COMM_WORLD_RANK", "PMI_RANK", "PMIX_RANK", "SLURM_PROCID");
    /// <summary>LOCAL_RANK, else the launcher's local rank.</summary>
    public static int? LocalRank() => Read("LOCAL_RANK", "OMPI_COMM_WORLD_LOCAL_RANK", "MPI_LOCALRANKID", "SLURM_LOCALID");
    /// <summary>Whether this process was started by mpirun/srun as one of several ranks.</summary>
    public static bool Launched => WorldSize() is > 1;
}

/// <summary>Opens the collective a run asks for (<c>collective=auto|none|mpi|nccl</c>).</summary>
public static class Collectives
{
    /// <summary>The backend <paramref name="kind"/> names, for a run on <paramref name="device"/>;
    /// auto: NCCL on CUDA (when libnccl loads), MPI on the CPU, none when not launched as several ranks.</summary>
    public static ICollective Open(SimKO.Math.CollectiveBackend kind, Device device, double timeoutSeconds)
    {
        if (kind.IsNoCollective) return new SingleProcess();
        if (kind.IsAutoCollective)
        {
            if (!LaunchEnvironment.Launched) return new SingleProcess();
            kind = device.type == DeviceType.CUDA && NcclBackend.Available(out _) ? SimKO.Math.CollectiveBackend.NcclCollective : SimKO.Math.CollectiveBackend.MpiCollective;
        }
        if (kind.IsNcclCollective)
        {
            if (!NcclBackend.Available(out var why)) throw new InvalidOperationException(why);
            return new NcclBackend(MpiBackend.Open(timeoutSeconds), device);
        }
        return MpiBackend.Open(timeoutSeconds);
    }

    /// <summary>The device of this rank: cuda:LOCAL_RANK when the run asks for CUDA without an index
    /// and was launched as several ranks; the requested device otherwise.</summary>
    public static RunSpec.Device DeviceOf(RunSpec.Device requested) =>
        requested is RunSpec.Device.Cuda { index: 0 } && LaunchEnvironment.Launched && LaunchEnvironment.LocalRank() is int local
            ? RunSpec.Device.NewCuda(local) : requested;
}

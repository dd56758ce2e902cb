using Gymwire.Features.Attendance;
using Gymwire.Features.Members;
using Gymwire.Features.Payments;
using Gymwire.Features.Training;
using Gymwire.Infrastructure;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.DependencyInjection.Extensions;

namespace Gymwire.Features.Zapier;

public static class TriggerCacheSetup
{
    public static IServiceCollection AddTriggerCache(this IServiceCollection services)
    {
        services.AddOptions<TriggerCacheOptions>().BindConfiguration(TriggerCacheOptions.Section).ValidateDataAnnotations().ValidateOnStart();
        services.TryAddSingleton<ZapierMetrics>();
        services.AddSingleton<TriggerCache>();
        services.AddAfterCommit<TriggerCacheInvalidation>();
        services.AddNotificationChannel<TriggerCacheChannel>();
        return services;
    }
}

/// <summary>
/// Moves the stamp of every gym whose members, payments, training sessions or check-ins an EF Core write added, changed
/// or removed, once the write has committed, so that this node's next poll reads the database. A save that failed
/// outside a transaction counts too: on a lost reply it may have committed, and a needless read is cheap.
/// </summary>
public sealed class TriggerCacheInvalidation(TriggerCache cache) : IAfterCommit
{
    public bool Watches(object row, EntityState state) => cache.Enabled && GymOf(row) is not null;

    public void Committed(IReadOnlyList<object> rows)
    {
        Guid? last = null;
        foreach (var row in rows)
        {
            // Rows come grouped by save, mostly of one gym: skip repeats of the gym just invalidated.
            if (GymOf(row) is { } gymId && gymId != last)
            {
                cache.Invalidate(gymId);
                last = gymId;
            }
        }
    }

    public void SaveFailed(IReadOnlyList<object> rows) => Committed(rows);

    private static Guid? GymOf(object row) => row switch
    {
        Member m => m.GymId,
        Payment p => p.GymId,
        TrainingSession s => s.GymId,
        AttendanceRecord a => a.GymId,
        _ => null,
    };
}

/// <summary>
/// On PostgreSQL, the gyms the <c>TriggerPollNotify</c> triggers name from inside each committed write, whoever wrote.
/// While not listening the cache serves nothing, and each (re)connection invalidates everything, since notifications
/// sent meanwhile were lost.
/// </summary>
public sealed class TriggerCacheChannel(TriggerCache cache) : INotificationChannel
{
    public const string Channel = "gymwire_trigger_data";

    public string Name => Channel;

    public bool Enabled => cache.Enabled;

    public void Received(string payload)
    {
        if (Guid.TryParse(payload, out var gymId))
        {
            cache.Invalidate(gymId);
        }
        else
        {
            cache.InvalidateAll();
        }
    }

    public void ListeningChanged(bool listening) => cache.SetListening(listening);
}

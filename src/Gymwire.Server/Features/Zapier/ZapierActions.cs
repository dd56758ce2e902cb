using System.Security.Claims;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using Gymwire.Data;
using Gymwire.Features.Attendance;
using Gymwire.Features.Leads;
using Gymwire.Features.Members;
using Gymwire.Features.Sms;
using Gymwire.Infrastructure;
using Gymwire.Infrastructure.Auth;
using Microsoft.EntityFrameworkCore;

namespace Gymwire.Features.Zapier;

/// <summary>The body of <c>log_attendance</c>.</summary>
public sealed record LogAttendanceRequest(string? UserId);

/// <summary>
/// Zapier actions: <c>POST /api/zapier/actions?type=…</c> with a JSON body, answered 201 with the created
/// object. The body's shape depends on <c>type</c>, so it is read here rather than bound by the framework.
/// </summary>
public static class ZapierActions
{
    public static readonly string[] Types = ["create_lead", "send_sms", "log_attendance"];
    public const string IdempotencyHeader = "Idempotency-Key";
    public static readonly TimeSpan IdempotencyWindow = TimeSpan.FromHours(24);

    private sealed record Outcome(int Status, object Body);

    internal static async Task<IResult> Run(string? type, HttpRequest request, ClaimsPrincipal user, GymwireDbContext db, TimeProvider clock, CancellationToken ct)
    {
        if (type is null || !Types.Contains(type))
        {
            return ApiErrors.BadRequest(type is null
                ? $"Missing 'type' query parameter. Valid types: {string.Join(", ", Types)}"
                : $"Unknown action type '{type}'. Valid types: {string.Join(", ", Types)}");
        }
        if (!request.HasJsonContentType())
        {
            return ApiErrors.Status(StatusCodes.Status415UnsupportedMediaType, ErrorHandling.DefaultMessage(415));
        }
        string? idempotencyKey = request.Headers[IdempotencyHeader];
        if (idempotencyKey is { Length: 0 or > 255 })
        {
            return ApiErrors.BadRequest($"'{IdempotencyHeader}' must be 1 to 255 characters");
        }

        using var buffer = new MemoryStream();
        await request.Body.CopyToAsync(buffer, ct);
        var body = buffer.ToArray();
        var gymId = user.GetGymId();
        var now = clock.GetUtcNow().UtcDateTime;
        // Only keyed requests are compared with an earlier one; the others need no hash.
        var requestHash = idempotencyKey is null ? [] : SHA256.HashData([.. Encoding.UTF8.GetBytes(type + "\n"), .. body]);

        if (idempotencyKey is not null && await ReplayAsync(db, gymId, idempotencyKey, requestHash, now, ct) is { } replay)
        {
            return replay;
        }

        if (body.Length == 0)
        {
            return ApiErrors.BadRequest("A JSON request body is required");
        }
        Outcome outcome;
        try
        {
            outcome = type switch
            {
                "create_lead" => await CreateLeadAsync(Parse<CreateLeadRequest>(body), db, gymId, now),
                "send_sms" => await SendSmsAsync(Parse<SendSmsRequest>(body), db, gymId, now),
                _ => await LogAttendanceAsync(Parse<LogAttendanceRequest>(body), db, gymId, now, ct),
            };
        }
        catch (JsonException e)
        {
            return ApiErrors.BadRequest(ErrorHandling.DescribeJsonError(e));
        }
        if (outcome.Status != StatusCodes.Status201Created)
        {
            db.ChangeTracker.Clear();
            return ApiErrors.Status(outcome.Status, ((ErrorResponse)outcome.Body).Error);
        }

        var json = JsonSerializer.Serialize(outcome.Body, outcome.Body.GetType(), GymwireJson.Options);
        if (idempotencyKey is not null)
        {
            db.IdempotencyRecords.Add(new IdempotencyRecord
            {
                Id = Guid.CreateVersion7(now), GymId = gymId, Key = idempotencyKey, RequestHash = requestHash,
                StatusCode = outcome.Status, ResponseBody = json, CreatedAt = now,
            });
        }
        try
        {
            // The action, its event and the idempotency record commit together, or not at all.
            await SaveAsync(db, gymId, request.HttpContext.RequestServices, ct);
        }
        catch (DbUpdateException) when (idempotencyKey is not null)
        {
            // A concurrent retry with the same key won the race; answer with its result.
            db.ChangeTracker.Clear();
            if (await ReplayAsync(db, gymId, idempotencyKey, requestHash, now, ct) is { } winner)
            {
                return winner;
            }
            throw;
        }
        return Results.Content(json, "application/json; charset=utf-8", Encoding.UTF8, outcome.Status);
    }

    /// <summary>
    /// The action's new rows are written with those of the actions waiting beside it, in one transaction
    /// (<see cref="ActionWrites"/>): on SQLite all actions wait for the one writer, on PostgreSQL those of a gym wait
    /// for its event-order lock. On PostgreSQL a batch of inserts is one round trip (<c>ActionRoundTripTests</c>).
    /// </summary>
    private static async Task SaveAsync(GymwireDbContext db, Guid gymId, IServiceProvider services, CancellationToken ct)
    {
        List<object> rows = [];
        foreach (var entry in db.ChangeTracker.Entries())
        {
            if (entry.State != EntityState.Added)
            {
                await db.SaveChangesAsync(ct);
                return;
            }
            rows.Add(entry.Entity);
        }
        db.ChangeTracker.Clear();
        var queue = db.Provider == DatabaseProvider.Postgres ? gymId : Guid.Empty;
        await services.GetRequiredService<ActionWrites>().SaveAsync(queue, rows);
    }

    private static async Task<IResult?> ReplayAsync(GymwireDbContext db, Guid gymId, string key, byte[] requestHash, DateTime now, CancellationToken ct)
    {
        if (await IdempotentCreates.FindLiveAsync(db, gymId, key, now, ct) is not { } record)
        {
            return null;
        }
        if (!CryptographicOperations.FixedTimeEquals(record.RequestHash, requestHash))
        {
            return ApiErrors.Status(StatusCodes.Status409Conflict, $"This {IdempotencyHeader} was already used with a different request");
        }
        var replayed = Results.Content(record.ResponseBody, "application/json; charset=utf-8", Encoding.UTF8, record.StatusCode);
        return new ReplayedResult(replayed);
    }

    // A body of JSON null deserializes to null: treat it as an object with no fields, so "required" errors name the field.
    private static T Parse<T>(byte[] body) where T : class =>
        JsonSerializer.Deserialize<T>(body, GymwireJson.Options) ?? JsonSerializer.Deserialize<T>("{}"u8, GymwireJson.Options)!;

    private static Task<Outcome> CreateLeadAsync(CreateLeadRequest body, GymwireDbContext db, Guid gymId, DateTime now)
    {
        if (LeadService.Validate(body) is { } invalid)
        {
            return Task.FromResult(new Outcome(400, new ErrorResponse(invalid)));
        }
        var lead = LeadService.AddLead(db, gymId, body, "zapier", now);
        return Task.FromResult(new Outcome(201, LeadService.Map(lead)));
    }

    private static Task<Outcome> SendSmsAsync(SendSmsRequest body, GymwireDbContext db, Guid gymId, DateTime now)
    {
        if (SmsService.Validate(body) is { } invalid)
        {
            return Task.FromResult(new Outcome(400, new ErrorResponse(invalid)));
        }
        return Task.FromResult(new Outcome(201, SmsService.Map(SmsService.Queue(db, gymId, body, now))));
    }

    private static async Task<Outcome> LogAttendanceAsync(LogAttendanceRequest body, GymwireDbContext db, Guid gymId, DateTime now, CancellationToken ct)
    {
        if (new RequestValidator().Required(body.UserId, "user_id", 100).Error is { } invalid)
        {
            return new Outcome(400, new ErrorResponse(invalid));
        }
        if (!await db.IsActiveMemberAsync(gymId, body.UserId!, ct))
        {
            return new Outcome(404, new ErrorResponse(MemberService.NotAMember(body.UserId)));
        }
        var record = AttendanceService.AddCheckIn(db, gymId, body.UserId!, null, AttendanceStatuses.Approved, "api", now);
        return new Outcome(201, AttendanceService.Map(record));
    }

    /// <summary>A replayed response, marked so clients can tell (as Stripe does).</summary>
    private sealed class ReplayedResult(IResult inner) : IResult
    {
        public Task ExecuteAsync(HttpContext httpContext)
        {
            httpContext.Response.Headers["Idempotent-Replayed"] = "true";
            return inner.ExecuteAsync(httpContext);
        }
    }
}

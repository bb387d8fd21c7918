//! Service-level agreements: business-hours calendars, policies and the timers of an incident.
//!
//! - [`calendar`]: the business-time arithmetic (`add_business`, `business_between`) over a
//!   [`calendar::CalendarDefinition`] (IANA zone, weekly ranges, holidays); pure, integer seconds.
//! - [`ics`]: holidays imported from an iCalendar file.
//! - [`policy`]: SLA policies as data, and the choice of a policy for an incident.
//! - [`config`]: the `sla_calendar` and `sla_policy` aggregates (the tenant's SLA configuration).
//! - [`timer`]: the response and resolution timers of an incident (start, pause, recompute,
//!   thresholds, cycles) as a pure function of the incident's history and the policy in force.

pub mod calendar;
pub mod config;
pub mod ics;
pub mod policy;
pub mod timer;

pub use config::{
    SlaCalendar, SlaCalendarAggregate, SlaCalendarCommand, SlaCalendarError, SlaCalendarEvent,
    SlaPolicyAggregate, SlaPolicyCommand, SlaPolicyError, SlaPolicyEvent, SlaPolicyState,
};

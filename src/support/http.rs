//! The one HTTP client set-up every outbound call uses: a global timeout, a `User-Agent` naming
//! mt5bot, its version and the part of it calling, and HTTP error statuses returned as answers
//! (every caller reads the status and the body to say what the server refused, and why).

use std::time::Duration;

use super::build_info::VERSION;

/// An agent for `role` (empty for the daemon itself, else e.g. `ctl`) with a global timeout.
pub fn agent(role: &str, timeout: Duration) -> ureq::Agent {
    builder(role, timeout).build().into()
}

/// [`agent`] with a shorter limit on establishing the connection.
pub fn agent_with_connect_timeout(role: &str, connect: Duration, timeout: Duration) -> ureq::Agent {
    builder(role, timeout).timeout_connect(Some(connect)).build().into()
}

fn builder(role: &str, timeout: Duration) -> ureq::config::ConfigBuilder<ureq::typestate::AgentScope> {
    let user_agent = if role.is_empty() { format!("mt5bot/{VERSION}") } else { format!("mt5bot/{VERSION} {role}") };
    ureq::Agent::config_builder().http_status_as_error(false).timeout_global(Some(timeout)).user_agent(user_agent)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_agent_names_the_role_and_statuses_are_answers() {
        let a = agent("ctl", Duration::from_secs(3));
        let c = a.config();
        assert_eq!(c.timeouts().global, Some(Duration::from_secs(3)));
        assert!(!c.http_status_as_error());
        let b = agent_with_connect_timeout("", Duration::from_secs(1), Duration::from_secs(9));
        assert_eq!(b.config().timeouts().connect, Some(Duration::from_secs(1)));
    }
}

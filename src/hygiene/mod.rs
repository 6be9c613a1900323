//! List hygiene: what Ember learns about recipients after sending to them, and what it does
//! with it. The global suppression list (`store`), feedback-loop complaints (`arf`), asynchronous
//! bounces (`dsn`), the processors that receive both over SMTP (`processor`), and one-click
//! unsubscribe (`unsubscribe`).

pub mod address_list;
pub mod arf;
pub mod dsn;
pub mod import;
pub mod patterns;
pub mod processor;
pub mod report;
pub mod store;
pub mod unsubscribe;
